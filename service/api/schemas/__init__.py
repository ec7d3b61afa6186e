"""Request and response bodies, one module per resource (the OpenAPI schema is made from them)."""
