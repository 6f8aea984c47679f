// The call metadata key by which the web view (daemon/web/web_api.h) tells
// the daemon's services whose token an HTTP request came with. The services
// believe it only on a connection the socket listener did not accept — the
// daemon's own in-process channel, whose calls would otherwise count as the
// daemon's (root's in system mode) — so it can only narrow what such a call
// sees; on a Unix-socket connection the kernel's answer (SO_PEERCRED) stands
// and the key is ignored (daemon/services/services.h, CallerUid).
//
// Here, below both, because the web view and the services may not include
// each other (docs/ARCHITECTURE.md §1).
#pragma once

namespace amld::base {

inline constexpr char kViewerUidMetadata[] = "amld-viewer-uid";

}  // namespace amld::base
