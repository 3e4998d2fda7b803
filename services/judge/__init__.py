"""The judge service: LLM-as-a-judge with the paper's language gate, and LLM translation.

Core (no gRPC): `core.Judge` ties together `providers` (openai, generator), `grading` (the gate, the rubric,
one repair request), `translation`, `cache` (replies in the artifact store), `usage` (tokens and cost),
`prompts` (templates in `templates/`) and `settings` (env `POLYGLOT_JUDGE_*`). Edge: `servicer`, `client`,
`main`, `lid_gate` (the lid service's client), `generator_provider` (the generator's stub).
"""
