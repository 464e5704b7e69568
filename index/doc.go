// Package index turns one layer's tar stream into a compact, memory-mapped table of its members and
// serves random reads of member data through the layer's decompressed stream (package compression).
//
// It owns: the one-pass tar header scan (data offsets, PAX/GNU extensions, sparse maps, xattrs), the
// versioned on-disk table kept in a cache directory keyed by digest, and the proof (digest, diff_id,
// verified record) that ties a cached table and stream index to a blob. It must not open source paths
// by itself or interpret whiteout names: ".wh." members are stored like any other member and left to
// package overlay.
package index
