"""One compiled training step for every ``tf.distribute`` strategy.

Keras 3's ``fit`` fails under ``MultiWorkerMirroredStrategy`` with two or more workers
(keras-team/keras#20585: scalar metrics are reduced along axis 0), so training runs this
step instead: ``strategy.run`` inside a ``tf.function``, the route of TensorFlow's
multi-worker custom-loop tutorial. The same code serves the default strategy (one CPU or
GPU), ``MirroredStrategy`` (local GPUs) and ``MultiWorkerMirroredStrategy`` (several hosts).

Data parallelism is made exact, so that N replicas with batch B train like one replica with
the N batches concatenated:

- each replica sums its token losses and divides by the token count of the *global* batch
  (all-reduced), so length-bucketed batches with different token counts weigh every token
  the same;
- gradients are all-reduced, then clipped by their global norm (Keras's optimizer would clip
  each replica's share before the sum), then handed to the optimizer divided by N, because
  the optimizer all-reduces (sums) them once more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from seq2seq.model.losses import MaskedCrossEntropy

SUM = tf.distribute.ReduceOp.SUM


class Trainer:
    """A model, its optimizer and loss under one strategy; ``step`` trains on one global batch.

    Args:
        strategy: the ``tf.distribute`` strategy the model and optimizer were built under.
        model: a ``Seq2Seq`` built in ``strategy.scope()``.
        optimizer: a Keras optimizer without ``clipnorm`` (clipping happens here, globally);
            a ``LossScaleOptimizer`` under mixed precision.
        loss: the masked token loss.
        clipnorm: clip the all-reduced gradient to this global norm; 0 turns clipping off.
        jit_compile: XLA-compile each replica's forward and backward pass.
    """

    def __init__(
        self,
        strategy: tf.distribute.Strategy,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        loss: MaskedCrossEntropy,
        clipnorm: float = 0.0,
        jit_compile: bool = False,
    ):
        if clipnorm < 0:
            raise ValueError(f"clipnorm is {clipnorm}; allowed: >= 0 (0 turns clipping off)")
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.loss = loss
        self.clipnorm = float(clipnorm)
        self.loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        with strategy.scope():
            optimizer.build(model.trainable_variables)
        self._forward_backward = tf.function(self._gradients, jit_compile=jit_compile)
        self._step = None

    @property
    def num_replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    def _gradients(self, inputs, target_out, global_tokens):
        with tf.GradientTape() as tape:
            logits = self.model(inputs, training=True)
            loss_sum, tokens = self.loss.sum_and_count(target_out, logits)
            loss = loss_sum / tf.maximum(global_tokens, 1.0)
            if self.loss_scaled:
                loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(loss, self.model.trainable_variables)
        # Embedding gradients arrive as IndexedSlices with a row per token occurrence; Keras's
        # optimizers update such rows one by one, so the result would depend on how the batch
        # is split over replicas. Dense gradients make N replicas equal to one.
        gradients = [tf.convert_to_tensor(g) if g is not None else g for g in gradients]
        return gradients, loss_sum, tokens

    def _replica_step(self, inputs, target_out):
        context = tf.distribute.get_replica_context()
        tokens = tf.reduce_sum(tf.cast(tf.not_equal(target_out, 0), tf.float32))
        global_tokens = context.all_reduce(SUM, tokens)
        gradients, loss_sum, _ = self._forward_backward(inputs, target_out, global_tokens)
        gradients = context.all_reduce(SUM, gradients)
        scale = self.optimizer.dynamic_scale if self.loss_scaled else None
        if scale is not None:
            gradients = [g / scale for g in gradients]
        norm = tf.linalg.global_norm(gradients)
        if self.clipnorm:
            gradients, _ = tf.clip_by_global_norm(gradients, self.clipnorm, use_norm=norm)
        # The optimizer sums the replicas' gradients again: hand each replica 1/N of the total.
        factor = 1.0 / self.num_replicas if scale is None else scale / self.num_replicas
        gradients = [g * factor for g in gradients]
        self.optimizer.apply(gradients, self.model.trainable_variables)
        return loss_sum, tokens, norm

    def step(self, batch) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Train on one distributed batch; returns the global (loss sum, tokens, grad norm)."""
        if self._step is None:
            self._step = tf.function(self._global_step, reduce_retracing=True)
        return self._step(batch)

    def _global_step(self, batch):
        inputs, target_out = batch
        loss_sum, tokens, norm = self.strategy.run(self._replica_step, args=(inputs, target_out))
        return (
            self.strategy.reduce(SUM, loss_sum, axis=None),
            self.strategy.reduce(SUM, tokens, axis=None),
            self.strategy.experimental_local_results(norm)[0],
        )

    def broadcast_from_chief(self, values: Sequence[float]) -> list[float]:
        """Every worker gets the first replica's ``values`` (the chief's dev scores), so that
        callbacks that stop training or change the learning rate decide alike everywhere."""
        if self.num_replicas == 1:
            return [float(v) for v in values]
        local = tf.constant([float(v) for v in values], tf.float64)
        return [float(v) for v in self._sum_first_replica(local).numpy()]

    @tf.function
    def _sum_first_replica(self, value):
        def keep_first(value):
            first = tf.equal(tf.distribute.get_replica_context().replica_id_in_sync_group, 0)
            return tf.where(first, value, tf.zeros_like(value))

        return self.strategy.reduce(SUM, self.strategy.run(keep_first, args=(value,)), axis=None)

    @tf.function
    def _sum_replicas(self, value):
        return self.strategy.reduce(SUM, self.strategy.run(tf.identity, args=(value,)), axis=None)

    def sum_over_replicas(self, value: float) -> float:
        """Sum a per-process number over all replicas (e.g. to check vocabularies agree)."""
        if self.num_replicas == 1:
            return float(value)
        return float(self._sum_replicas(tf.constant(float(value), tf.float64)).numpy())

    def distribute(self, dataset_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset]):
        """Each input pipeline (one per worker) builds its own shard of the data."""
        return self.strategy.distribute_datasets_from_function(dataset_fn)
