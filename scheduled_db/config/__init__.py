"""The typed configuration: keys, kinds, model, loading, discovery, docs."""
