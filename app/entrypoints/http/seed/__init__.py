"""The seed's chat endpoints: `POST /chat` and `POST /local-chat`."""
