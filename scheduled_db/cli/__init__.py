"""The command line (not pure: it talks HTTP and starts the node)."""
