"""Fine-tuning: datasets from a project, LoRA/QLoRA jobs, adapters served by the gateway."""
