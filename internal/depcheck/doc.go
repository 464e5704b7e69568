// Package depcheck holds the tests that enforce DESIGN.md's rules between packages: which of the
// module's packages may import which, and which outside packages each must not reach
// (depcheck_test.go), and that no test sets a package variable, so that test knobs are options and
// tests may run in parallel (knobs_test.go). It has no code of its own, so a rule broken fails `go test`.
package depcheck
