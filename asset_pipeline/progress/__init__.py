"""Progress messages and the client that publishes them: shared by the pipeline and the hub, importing neither."""
