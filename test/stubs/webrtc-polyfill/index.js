// Stub for webrtc-polyfill: webtorrent is used over TCP only in this project's tests.
// The real package depends on node-datachannel, whose install downloads a prebuilt binary.
class Unavailable {
  constructor() {
    throw new Error('WebRTC is not available in codex-bittorrent-gateway tests (TCP peers only)')
  }
}
export const RTCPeerConnection = Unavailable
export const RTCSessionDescription = Unavailable
export const RTCIceCandidate = Unavailable
export default { RTCPeerConnection, RTCSessionDescription, RTCIceCandidate }
