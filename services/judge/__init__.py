"""The judge service: LLM-as-a-judge with the paper's language gate, and LLM translation.

Core (no gRPC): `core.Judge` ties together `providers` (openai, generator), `grading` (the gate, the rubric,
one repair request), `translation`, `cache` (replies in the artifact store), `usage` (tokens and cost),
`prompts` (templates in `templates/`) and `settings` (env `POLYGLOT_JUDGE_*`). Edge: `servicer`, `client`,
`main`, `lid_gate` and `generator_provider` (the lid and generator services through their asyncio clients).
"""
