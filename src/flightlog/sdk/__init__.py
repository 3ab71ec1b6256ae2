"""Recording: context, decorators, lineage capture, the batching writer and sinks."""
