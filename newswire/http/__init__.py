"""The HTTP service: WebSub callbacks, the consumer gateway (SSE, look-ups, webhooks), the desk page."""
