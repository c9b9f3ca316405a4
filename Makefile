.PHONY: install run test bench
install:
	scripts/install.sh
run:
	scripts/run.sh
test:
	scripts/test.sh
bench:
	.venv/bin/python bench/chat_turn.py
