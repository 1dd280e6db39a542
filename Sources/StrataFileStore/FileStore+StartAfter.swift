import Foundation
import StrataCore

/// The file store's continuation is the last key returned, so starting after a key is the same.
extension FileStore: StartAfterListing {
    public func listPage(
        prefix: String, delimiter: String?, startAfter: String?, continuation: String?,
        maxKeys: Int
    ) throws -> ListPage {
        try listPage(prefix: prefix, delimiter: delimiter, continuation: continuation ?? startAfter, maxKeys: maxKeys)
    }
}
