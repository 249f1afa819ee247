"""The only package that talks to MongoDB and Redis: clients, indexes, and the domain's repositories."""
