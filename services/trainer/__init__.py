"""The trainer service: LoRA instruction-tuning jobs (TRL SFTTrainer + PEFT), the paper's recipe by default."""
