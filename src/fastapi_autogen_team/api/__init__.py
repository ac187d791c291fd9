"""The HTTP surface: routes, authentication and the rendering of errors as OpenAI errors."""
