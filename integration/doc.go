// Package integration holds black-box tests of the built imgfs binary with real FUSE mounts, compared
// with independent oracles (umoci unpack listings of the corpus, skopeo). Nothing imports it.
package integration
