// Package fs serves an overlay view through FUSE: node IDs, attributes, cache timeouts, kernel page
// caching of immutable data, and the mapping of errors to errno values.
//
// It must not hold union logic or touch tar.
package fs
