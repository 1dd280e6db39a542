/// CRC-32 as in gzip (ISO 3309, reflected polynomial 0xEDB88320), slicing by 8.
///
/// libarchive 3.6's gzip reader does not check a member's CRC-32 or length (its source says
/// "XXX TODO: Verify the length and CRC"), so the extractor computes them itself.
struct CRC32 {
    private(set) var value: UInt32 = 0

    private static let tables: [[UInt32]] = {
        var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[0][i] = c
        }
        for i in 0..<256 {
            for k in 1..<8 { t[k][i] = (t[k - 1][i] >> 8) ^ t[0][Int(t[k - 1][i] & 0xff)] }
        }
        return t
    }()

    /// One flat table of 8 × 256 entries, for fewer bounds checks in the loop.
    private static let flat: [UInt32] = tables.flatMap { $0 }

    mutating func update(_ buffer: UnsafeRawBufferPointer) {
        var c = ~value
        let n = buffer.count
        guard n > 0, let base = buffer.baseAddress else { return }
        CRC32.flat.withUnsafeBufferPointer { t in
            var i = 0
            while i + 8 <= n {
                let lo = c ^ base.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian
                let hi = base.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self).littleEndian
                c =
                    t[7 * 256 + Int(lo & 0xff)] ^ t[6 * 256 + Int((lo >> 8) & 0xff)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xff)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xff)] ^ t[2 * 256 + Int((hi >> 8) & 0xff)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xff)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                c = t[Int((c ^ UInt32(base.load(fromByteOffset: i, as: UInt8.self))) & 0xff)] ^ (c >> 8)
                i += 1
            }
        }
        value = ~c
    }
}
