"""The StorageActor and its RocksDB store: Raft log, state, snapshots, data dir."""
