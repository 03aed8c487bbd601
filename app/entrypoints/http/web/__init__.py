"""The chat page served at `/`: static files shipped in the package, no build step."""
