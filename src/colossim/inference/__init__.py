"""The inference engine: serving latency, throughput, KV cache and capacity, on the shared cost model."""
