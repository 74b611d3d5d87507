"""Image generation: the request a spec becomes, the backend interface, and the backends."""
