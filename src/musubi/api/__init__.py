"""The REST API: ``create_app()``, middleware, error mapping, one router per area."""
