"""The generator's OpenAI-compatible HTTP front door: `/v1/completions`, `/v1/chat/completions`, `/v1/models`.

It serves the same `core.Generator` (and so the same engine, batching and adapter cache) as the gRPC
servicer, on the same event loop, in the same process: `polyglot-serve generator --model M --http-port 8052`.
`app.py` is the FastAPI app, `schema.py` the OpenAI request/response models, `tokens.py` the token-level
paths (token-id prompts, echo, logprobs), `chat.py` the chat layout, `errors.py` the error mapping,
`metrics.py` the per-request log line and Prometheus metrics, and `serve.py` the uvicorn server beside gRPC.
"""
