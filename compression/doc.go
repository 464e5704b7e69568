// Package compression reads and writes the compressed streams of blobs: it detects gzip and zstd by
// magic, gives random access into their decompressed bytes through restart points persisted in a
// cache directory keyed by digest, decodes them sequentially, and compresses in parallel blocks.
//
// It owns: the magic numbers, the gzip member and zstd frame walkers, the restart points and their
// versioned cache files (.gzi, .zti, and the .raw copy of a zstd stream that has none), the live
// decoders kept for sequential readers, and the deterministic block format of new layers. It knows
// nothing of tar members, images or unions: a stream is bytes, and what they must hash to is the
// caller's to prove before it commits the cache files (Indexer.FinishPending).
package compression
