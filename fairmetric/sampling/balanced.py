"""Group-balanced batch samplers: epoch-level re-sampling and per-batch group quotas.

Both are m-per-class batch samplers (``DataLoader(dataset, batch_sampler=...)``) that also control
how often each sensitive group (e.g. a colour or an ethnicity) is seen:

* :class:`EpochBalancedBatchSampler` re-samples the *epoch*: each epoch it over-samples small groups
  (or under-samples large ones) until the groups reach a target distribution, then builds
  m-per-class batches from that pool. Batch compositions vary around the target.
* :class:`GroupQuotaBatchSampler` fixes the *batch*: every batch holds exactly ``quotas[g]``
  samples of group ``g`` and exactly ``m`` samples of each of its ``batch_size // m`` classes.

Like :class:`~fairmetric.sampling.MPerClassBatchSampler`, batches are a pure function of
``(seed, epoch)`` (no global random state), :meth:`set_epoch` selects the epoch, and with
``world_size > 1`` every rank computes the same global sequence and rank ``r`` takes batches
``r, r + world_size, ...`` (``ceil(num_batches / world_size)`` each, the sequence continued to pad).
``set_epoch(epoch, start_batch=k)`` resumes mid-epoch after ``k`` global batches (``steps_done *
world_size`` of the saving run; the resumed run's world size may differ), bit-identically;
``state_dict()`` / ``load_state_dict()`` save and restore ``(epoch, start_batch)``.
"""

from fairmetric.sampling.epoch_balanced import EpochBalancedBatchSampler
from fairmetric.sampling.group_quota import GroupQuotaBatchSampler

__all__ = ["EpochBalancedBatchSampler", "GroupQuotaBatchSampler"]
