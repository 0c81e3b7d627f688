"""libtorrent driver for the test suite: one libtorrent session, controlled with JSON lines.

Run with /usr/bin/python3 (Debian's python3-libtorrent loads only there). Every request is one
JSON object per line on stdin: {"id": N, "op": "...", ...}; every answer is one JSON line on stdout:
{"id": N, "ok": true, "result": ...} or {"id": N, "ok": false, "error": "..."}. At start the driver
prints {"event": "ready", "port": P}.

Network rule: the session listens on 127.0.0.1 only; DHT, LSD, UPnP and NAT-PMP are off.
"""
import json
import os
import sys
import time

import libtorrent as lt


def hexb(b):
    return b.hex() if isinstance(b, (bytes, bytearray)) else str(b)


def sha1_hex(h):
    # sha1_hash -> hex string, or None when all zero
    s = str(h)
    return None if s == "0" * 40 else s


def make_session(port, extra):
    settings = {
        "listen_interfaces": "127.0.0.1:%d" % port,
        "outgoing_interfaces": "",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        "min_reconnect_time": 1,
        "peer_connect_timeout": 3,
        "connection_speed": 50,
        "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.status_notification,
        "user_agent": "codex-bt-test-libtorrent",
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
        "allow_i2p_mixed": False,
        "dht_bootstrap_nodes": "",
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
    }
    settings.update(extra or {})
    return lt.session(settings)


class Driver:
    def __init__(self, port, extra):
        self.ses = make_session(port, extra)
        self.handles = {}
        self.next_handle = 1
        self.errors = {}

    def port(self):
        return self.ses.listen_port()

    def op_create_torrent(self, req):
        path = req["path"]
        version = req.get("version", "hybrid")
        flags = 0
        if version == "v1":
            flags = lt.create_torrent.v1_only
        elif version == "v2":
            flags = lt.create_torrent.v2_only
        fs = lt.file_storage()
        lt.add_files(fs, path)
        piece_length = int(req.get("piece_length", 0))
        if req.get("pad_files") and version == "v1":
            flags |= lt.create_torrent.optimize_alignment if hasattr(lt.create_torrent, "optimize_alignment") else 0
        ct = lt.create_torrent(fs, piece_length, flags=flags)
        for tier, url in enumerate(req.get("trackers", [])):
            ct.add_tracker(url, tier)
        for url in req.get("webseeds", []):
            ct.add_url_seed(url)
        if req.get("private"):
            ct.set_priv(True)
        ct.set_creator("libtorrent-test")
        lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(path)))
        data = lt.bencode(ct.generate())
        with open(req["out"], "wb") as f:
            f.write(data)
        ti = lt.torrent_info(req["out"])
        return self._info(ti)

    def _info(self, ti):
        ih = ti.info_hashes()
        fs = ti.files()
        files = []
        for i in range(fs.num_files()):
            root = fs.root(i)
            files.append({
                "path": fs.file_path(i),
                "size": fs.file_size(i),
                "offset": fs.file_offset(i),
                "pad": bool(fs.file_flags(i) & lt.file_storage.flag_pad_file),
                "root": None if str(root) == "0" * 64 else str(root),
            })
        layers = {}
        # piece layers are not exposed directly; rebuild them from the .torrent dict
        return {
            "name": ti.name(),
            "info_hash_v1": sha1_hex(ih.v1) if ih.has_v1() else None,
            "info_hash_v2": str(ih.v2) if ih.has_v2() else None,
            "piece_length": ti.piece_length(),
            "num_pieces": ti.num_pieces(),
            "total_size": ti.total_size(),
            "files": files,
            "piece_layers": layers,
        }

    def op_info(self, req):
        ti = lt.torrent_info(req["torrent"])
        out = self._info(ti)
        with open(req["torrent"], "rb") as f:
            d = lt.bdecode(f.read())
        pl = d.get(b"piece layers", {}) if isinstance(d, dict) else {}
        out["piece_layers"] = {hexb(k): hexb(v) for k, v in pl.items()}
        return out

    def op_add(self, req):
        params = lt.add_torrent_params()
        if "torrent" in req:
            params.ti = lt.torrent_info(req["torrent"])
        elif "magnet" in req:
            params = lt.parse_magnet_uri(req["magnet"])
        else:
            raise ValueError("add needs torrent or magnet")
        params.save_path = req["save_path"]
        flags = params.flags
        flags &= ~lt.torrent_flags.auto_managed
        flags &= ~lt.torrent_flags.paused
        if req.get("seed_mode"):
            flags |= lt.torrent_flags.seed_mode
        params.flags = flags
        if req.get("upload_limit"):
            params.upload_limit = int(req["upload_limit"])
        if req.get("download_limit"):
            params.download_limit = int(req["download_limit"])
        params.peers = [(p.rsplit(":", 1)[0], int(p.rsplit(":", 1)[1])) for p in req.get("peers", [])]
        h = self.ses.add_torrent(params)
        hid = self.next_handle
        self.next_handle += 1
        self.handles[hid] = h
        return {"handle": hid}

    def _h(self, req):
        h = self.handles.get(int(req["handle"]))
        if h is None:
            raise KeyError("no such handle")
        return h

    def op_status(self, req):
        h = self._h(req)
        s = h.status()
        return {
            "state": str(s.state),
            "progress": s.progress,
            "is_seeding": s.is_seeding,
            "is_finished": s.is_finished,
            "has_metadata": s.has_metadata,
            "num_peers": s.num_peers,
            "num_seeds": s.num_seeds,
            "total_download": s.total_download,
            "total_upload": s.total_upload,
            "total_payload_download": s.total_payload_download,
            "total_payload_upload": s.total_payload_upload,
            "download_rate": s.download_rate,
            "upload_rate": s.upload_rate,
            "total_wanted_done": s.total_wanted_done,
            "total_wanted": s.total_wanted,
            "num_pieces": s.num_pieces,
            "errc": s.errc.message() if s.errc.value() != 0 else None,
            "error": self.errors.get(int(req["handle"])),
            "total_failed_bytes": s.total_failed_bytes,
            "total_redundant_bytes": s.total_redundant_bytes,
        }

    def op_peers(self, req):
        h = self._h(req)
        return [{"ip": "%s:%d" % (p.ip[0], p.ip[1]), "client": p.client.decode("utf-8", "replace") if isinstance(p.client, bytes) else p.client,
                 "total_download": p.total_download, "total_upload": p.total_upload, "flags": int(p.flags)} for p in h.get_peer_info()]

    def op_connect(self, req):
        h = self._h(req)
        h.connect_peer((req["host"], int(req["port"])))
        return True

    def op_recheck(self, req):
        self._h(req).force_recheck()
        return True

    def op_pause(self, req):
        self._h(req).pause()
        return True

    def op_resume(self, req):
        self._h(req).resume()
        return True

    def op_set_upload_limit(self, req):
        self._h(req).set_upload_limit(int(req["limit"]))
        return True

    def op_remove(self, req):
        h = self._h(req)
        self.ses.remove_torrent(h)
        del self.handles[int(req["handle"])]
        return True

    def op_save_torrent(self, req):
        # write the (possibly magnet-fetched) metadata as a .torrent
        h = self._h(req)
        tf = h.torrent_file()
        if tf is None:
            raise ValueError("no metadata yet")
        ct = lt.create_torrent(tf)
        with open(req["out"], "wb") as f:
            f.write(lt.bencode(ct.generate()))
        return True

    def op_apply_settings(self, req):
        self.ses.apply_settings(req["settings"])
        return True

    def pump_alerts(self):
        for a in self.ses.pop_alerts():
            if isinstance(a, lt.torrent_error_alert) or isinstance(a, lt.file_error_alert):
                for hid, h in self.handles.items():
                    if h == a.handle:
                        self.errors[hid] = a.message()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    extra = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    d = Driver(port, extra)
    # wait for the listen socket
    deadline = time.time() + 10
    while d.port() == 0 and time.time() < deadline:
        time.sleep(0.05)
    sys.stdout.write(json.dumps({"event": "ready", "port": d.port()}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        rid = req.get("id")
        op = req.get("op")
        if op == "quit":
            sys.stdout.write(json.dumps({"id": rid, "ok": True, "result": True}) + "\n")
            sys.stdout.flush()
            break
        try:
            d.pump_alerts()
            fn = getattr(d, "op_" + str(op), None)
            if fn is None:
                raise ValueError("unknown op %s" % op)
            res = fn(req)
            out = {"id": rid, "ok": True, "result": res}
        except Exception as e:  # report every failure to the caller
            out = {"id": rid, "ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
