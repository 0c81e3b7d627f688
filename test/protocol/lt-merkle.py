#!/usr/bin/python3
"""Interop oracle for test/protocol/merkle.test.ts and hashers.test.ts.

Reads a JSON list of jobs on stdin, each {"path": <file or directory>, "pieceLength": <int>,
"mode": "v2" | "v1" | "hybrid"} (mode defaults to "v2"), builds the torrent with libtorrent's
create_torrent (no session, no network) and prints a JSON list with, per job:
  v2:     {"piecesRoot": hex, "pieceLayer": hex ('' when absent), "pieceLength", "length"}
  v1:     {"pieces": hex, "pieceLength", "length"}
  hybrid: {"pieces": hex, "pieceLength", "files": [{"path": [str], "length": int, "pad": bool}]}
"""
import json
import os
import sys

import libtorrent as lt

FLAGS = {
    'v2': lt.create_torrent.v2_only,
    'v1': lt.create_torrent.v1_only,
    'hybrid': 0,
}


def build(path, piece_length, mode):
    fs = lt.file_storage()
    lt.add_files(fs, path)
    ct = lt.create_torrent(fs, piece_length, flags=FLAGS[mode])
    lt.set_piece_hashes(ct, os.path.dirname(path))
    return ct.generate()


def describe(job):
    path = job['path']
    mode = job.get('mode', 'v2')
    d = build(path, job['pieceLength'], mode)
    info = d[b'info']
    out = {'pieceLength': info[b'piece length']}
    if mode == 'v2':
        entry = info[b'file tree'][os.path.basename(path).encode()][b'']
        root = entry[b'pieces root']
        out['piecesRoot'] = root.hex()
        out['pieceLayer'] = d.get(b'piece layers', {}).get(root, b'').hex()
        out['length'] = entry[b'length']
    elif mode == 'v1':
        out['pieces'] = info[b'pieces'].hex()
        out['length'] = info[b'length']
    else:
        out['pieces'] = info[b'pieces'].hex()
        out['files'] = [
            {
                'path': [p.decode() for p in f[b'path']],
                'length': f[b'length'],
                'pad': b'p' in f.get(b'attr', b''),
            }
            for f in info[b'files']
        ]
    return out


def main():
    jobs = json.load(sys.stdin)
    json.dump([describe(j) for j in jobs], sys.stdout)


if __name__ == '__main__':
    main()
