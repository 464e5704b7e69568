//go:build !linux

package custody

// oNoatime is Linux's O_NOATIME; other systems have no such flag.
const oNoatime = 0
