//! The linker's nosplit chain analysis (cmd/link/internal/ld/stackcheck.go).
