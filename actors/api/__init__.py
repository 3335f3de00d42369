"""The HttpActor: the REST API, its routes, views, errors, limits and forwarding."""
