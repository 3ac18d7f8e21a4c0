"""The ``algo`` keys of PEARL (``algo.name: pearl``).

Defaults are the reference code's (github.com/katerakelly/oyster ``configs/default.py``);
its cheetah-vel config sets ``num_extra_rl_steps_posterior: 600`` and
``embedding_batch_size: 100``. ``task_set: reference`` uses the family's reference task
set (:meth:`metarl.envs.ReferenceTaskSet.split`), checked when the learner is built (it
needs the family). Torch-free: configs are checked before torch loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...schema import ConfigError, setting


@dataclass
class PEARLConfig:
    """PEARL: a probabilistic context encoder and soft actor-critic, off-policy."""

    name: str = setting("pearl", "Algorithm (see `metarl algos`).")
    meta_batch_size: int = setting(16, "Tasks per gradient step (the reference's meta_batch).",
                                   ge=1, le=10**6)
    gamma: float = setting(0.99, "Discount factor.", gt=0, le=1)
    hidden_sizes: list[int] = setting([300, 300, 300], "Hidden layer widths of the actor, both "
                                      "Q-functions and V (ReLU MLPs; reference net_size 300).",
                                      ge=1, le=65536)
    latent_size: int = setting(5, "Size of the task latent z.", ge=1, le=4096)
    encoder_hidden_sizes: list[int] = setting([200, 200, 200], "Context encoder hidden layer "
                                              "widths.", ge=1, le=65536)
    use_next_obs_in_context: bool = setting(False, "Context transitions include s' (for tasks "
                                            "that differ in dynamics).")
    lr: float = setting(3e-4, "Adam learning rate of every network.", gt=0, le=10)
    tau: float = setting(0.005, "Polyak rate of the target V network.", gt=0, le=1)
    reward_scale: float = setting(5.0, "Rewards are multiplied by this in the Bellman target "
                                  "(the inverse entropy temperature).", gt=0, le=1e6)
    kl_lambda: float = setting(0.1, "Weight of KL(q(z|c) || N(0, I)) in the encoder's loss.",
                               ge=0, le=1e6)
    policy_mean_reg: float = setting(1e-3, "Penalty on the actor's squared pre-tanh mean.",
                                     ge=0, le=1e6)
    policy_std_reg: float = setting(1e-3, "Penalty on the actor's squared log-std.", ge=0,
                                    le=1e6)
    batch_size: int = setting(256, "Transitions per task in each actor-critic batch.", ge=1,
                              le=10**7)
    embedding_batch_size: int = setting(64, "Context transitions per task given to the "
                                        "encoder.", ge=1, le=10**7)
    num_train_tasks: int = setting(100, "Size of the fixed set of training tasks.", ge=1,
                                   le=10**6)
    num_test_tasks: int = setting(30, "Size of the fixed set of held-out tasks meta-tested "
                                  "during training.", ge=1, le=10**6)
    task_set: str = setting("sampled", "Where the fixed training and held-out tasks come "
                            "from: 'sampled' draws them from the family's distribution with "
                            "the run's seed; 'reference' takes the family's reference-code "
                            "set (the PEARL* families: oyster's tasks), its first "
                            "num_train_tasks training and last num_test_tasks held-out tasks.",
                            choices=("sampled", "reference"))
    num_tasks_sample: int = setting(5, "Training tasks that collect data each iteration.",
                                    ge=1, le=10**6)
    num_initial_steps: int = setting(2000, "Steps per training task collected with z ~ prior "
                                     "before the first gradient step.", ge=0, le=10**9)
    num_steps_prior: int = setting(400, "Steps per sampled task with z ~ prior (replay and "
                                   "encoder buffers).", ge=0, le=10**9)
    num_steps_posterior: int = setting(0, "Steps per sampled task with z ~ posterior (replay "
                                       "and encoder buffers).", ge=0, le=10**9)
    num_extra_rl_steps_posterior: int = setting(400, "Steps per sampled task with "
                                                "z ~ posterior for the replay buffer only.",
                                                ge=0, le=10**9)
    num_train_steps_per_itr: int = setting(2000, "Gradient steps per iteration.", ge=0,
                                           le=10**9)
    replay_buffer_size: int = setting(1_000_000, "Capacity of each task's replay buffers.",
                                      ge=1, le=10**9)
    meta_test_trajectories: int = setting(3, "Trajectories per held-out task in the meta-test "
                                          "during training (k = 0 .. N-1 context "
                                          "trajectories; the reference's 600 eval steps at "
                                          "horizon 200).", ge=1, le=1000)
    eval_every: int = setting(10, "Meta-test the held-out tasks every N iterations "
                              "(meta_test/return/adapt_k; 0 = never).", ge=0, le=10**9)

    def validate(self, prefix: str = "algo.") -> None:
        """Raise :class:`ConfigError` when the schedule cannot feed the encoder."""
        p = prefix
        if self.num_tasks_sample > self.num_train_tasks:
            raise ConfigError(f"{p}num_tasks_sample: {self.num_tasks_sample} must not exceed "
                              f"{p}num_train_tasks ({self.num_train_tasks})")
        if self.num_initial_steps == 0 and self.num_steps_prior + self.num_steps_posterior == 0:
            raise ConfigError(f"{p}num_initial_steps: with 0 initial steps, {p}num_steps_prior "
                              f"or {p}num_steps_posterior must be > 0 (the encoder needs "
                              "context)")
        if self.num_extra_rl_steps_posterior > 0 and \
                self.num_steps_prior + self.num_steps_posterior == 0:
            raise ConfigError(f"{p}num_extra_rl_steps_posterior: needs {p}num_steps_prior or "
                              f"{p}num_steps_posterior > 0 (the encoder buffer is refilled "
                              "only by those, and posterior z is inferred from it)")
