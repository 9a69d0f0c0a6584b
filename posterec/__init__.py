"""posterec: the package that combines the stages: CLI, Recommender facade, HTTP server, web page."""
