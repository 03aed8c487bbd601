"""FastAPI routers, OpenAI wire models and the error mapping."""
