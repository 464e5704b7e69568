//go:build !linux

package archive

// noAtime is 0 where the system has no O_NOATIME.
const noAtime = 0
