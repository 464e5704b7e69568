// Package custody keeps a chain-of-custody log: JSON lines, one record per evidence action, each
// holding the sha256 of the record before it, so that an edited, removed or reordered record is found.
package custody
