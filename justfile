# Developer shortcuts. The README's commands work without `just`.

# Run the host on its embedded defaults.
up:
    cargo run --release -p arw -- up

# The whole test suite (what CI runs).
test:
    bash scripts/test.sh

# Benchmarks quoted in docs/PERFORMANCE.md.
bench:
    cargo bench -p arw-policy --bench decision
    cargo bench -p arw-host --bench tool_call

# Validate the policies in policies/.
check-policies:
    cargo run -q -p arw -- policy check policies

fmt:
    cargo fmt --all
    cd components && cargo fmt --all

# Regenerate spec/ (OpenAPI, AsyncAPI, MCP tools, Cedar schema) and docs/gating-keys.md.
spec:
    cargo run -q -p arw -- spec export spec --docs docs
