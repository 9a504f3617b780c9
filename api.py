"""WSGI entry point: `gunicorn api:app` or `flask --app api run`."""
from recommender.serve.app import create_app

app = create_app()
