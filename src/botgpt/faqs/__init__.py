"""FAQs: curated question/answer pairs of one owner, found by semantic search."""
