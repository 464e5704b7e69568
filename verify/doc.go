// Package verify proves an image's claims against its bytes: every descriptor of the manifest chain,
// the config, each layer blob's digest and its uncompressed diff_id, and the chain ID, each blob
// streamed once, in parallel, without writing to the archive. What it proved is recorded in the
// index cache (keyed by the verified digests and the blob's identity), so a later evidence mount need
// not hash again while the archive is unchanged.
package verify
