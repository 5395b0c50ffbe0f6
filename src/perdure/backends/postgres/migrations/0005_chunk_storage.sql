-- Stream chunks are mostly bytes that do not compress (tokens, media, already
-- compressed data): store them out of line without trying pglz first, which
-- cost about a third of a 64 KiB chunk's write.
ALTER TABLE perdure.chunks ALTER COLUMN data SET STORAGE EXTERNAL;
