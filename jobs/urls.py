"""URLs the engine serves itself (health and metrics), for any Django project that includes them."""

urlpatterns: list = []
