// Package evidence derives what an examiner cites from an image's layers, without writing to them:
// which layer added, changed, hid or re-created a path, a Sleuth Kit bodyfile timeline, hashdeep
// lists of the merged view, and file-level differences between two images.
package evidence
