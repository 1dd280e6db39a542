import CZlib
import Foundation

/// One zlib stream reused for every page of a patch (`deflateReset` between pages). `compress2`
/// sets up and tears down a full-size stream per call (about 270 KB, its hash table cleared each
/// time), which cost more than compressing a 4 KiB page. The window and hash table are sized to
/// the page (a page is compressed on its own, so a larger window finds nothing more); the output
/// is ordinary zlib data that any inflater reads (`uncompress`, Python's `zlib.decompress`).
final class PageDeflater {
    private var stream = z_stream()
    private let ready: Bool

    init(pageSize: Int, level: Int32) {
        // windowBits: log2 of the page size within zlib's 9...15; memLevel: a hash table of about
        // one entry per byte of a page (2^(memLevel + 7) entries).
        let log2 = Int32(Int.bitWidth - 1 - max(pageSize, 512).leadingZeroBitCount)
        let windowBits = min(15, max(9, log2))
        let memLevel = min(9, max(1, windowBits - 7))
        ready =
            deflateInit2_(
                &stream, level, Z_DEFLATED, windowBits, memLevel, Z_DEFAULT_STRATEGY, zlibVersion(),
                Int32(MemoryLayout<z_stream>.size)) == Z_OK
    }

    deinit { if ready { deflateEnd(&stream) } }

    /// Compresses `page` into `out`; nil when it does not fit (it did not compress) or zlib failed.
    func compress(_ page: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int? {
        guard ready, deflateReset(&stream) == Z_OK else { return nil }
        stream.next_in = UnsafeMutablePointer(mutating: page.baseAddress!.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(page.count)
        stream.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = uInt(out.count)
        let rc = deflate(&stream, Z_FINISH)
        return rc == Z_STREAM_END ? Int(stream.total_out) : nil
    }
}

/// One zlib inflate stream reused for every page read (`inflateReset` between pages).
final class PageInflater {
    private var stream = z_stream()
    private let ready: Bool

    init() {
        ready = inflateInit_(&stream, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK
    }

    deinit { if ready { inflateEnd(&stream) } }

    /// Inflates `stored` into `page`; true only when it is one complete stream that fills `page`.
    func decompress(_ stored: UnsafeRawBufferPointer, into page: UnsafeMutableRawBufferPointer) -> Bool {
        guard ready, stored.count > 0, inflateReset(&stream) == Z_OK else { return false }
        stream.next_in = UnsafeMutablePointer(mutating: stored.baseAddress!.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(stored.count)
        stream.next_out = page.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = uInt(page.count)
        let rc = inflate(&stream, Z_FINISH)
        return rc == Z_STREAM_END && Int(stream.total_out) == page.count && stream.avail_in == 0
    }
}
