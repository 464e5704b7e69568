// Package depcheck holds the test that enforces DESIGN.md's import rules: which of the module's
// packages may import which, and which outside packages each must not reach. It has no code of its own;
// the rules and their checker live in depcheck_test.go, so an arrow against the design fails `go test`.
package depcheck
