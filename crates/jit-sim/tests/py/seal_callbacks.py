"""Seals platform callbacks with independent implementations, for the
receivers of `jit serve` (tests/events.rs), and opens the receiver's answer.

stdin: {"mode": "seal", "token", "key", "corp_id", "app_key", "wecom_xml",
        "ding_event", "ts_s", "ts_ms"}
   ->  {"wecom": <wechatpy's encrypted XML>, "ding": <dingtalk-sdk's dict>}
stdin: {"mode": "open", "token", "key", "app_key", "reply": {...}}
   ->  {"plaintext": <what dingtalk-sdk decrypted from the receiver's reply>}
Any failure raises, so the exit code is non-zero.
"""
import json
import sys

try:  # wechatpy 2.x
    from wechatpy.work.crypto import WeChatCrypto
except ImportError:  # wechatpy 1.8 (current stable release)
    from wechatpy.enterprise.crypto import WeChatCrypto
from dingtalk.crypto import DingTalkCrypto


def text(v):
    return v.decode() if isinstance(v, bytes) else v


def main():
    inp = json.load(sys.stdin)
    ding = DingTalkCrypto(inp["token"], inp["key"], inp["app_key"])
    if inp["mode"] == "open":
        r = inp["reply"]
        plain = ding.decrypt_message({"encrypt": r["encrypt"]}, r["msg_signature"], r["timeStamp"], r["nonce"])
        json.dump({"plaintext": text(plain)}, sys.stdout)
        return
    wecom = WeChatCrypto(inp["token"], inp["key"], inp["corp_id"])
    out = {
        "wecom": text(wecom.encrypt_message(inp["wecom_xml"], "pynonce1", inp["ts_s"])),
        "ding": {k: text(v) for k, v in ding.encrypt_message(inp["ding_event"], nonce="pynonce2", timestamp=inp["ts_ms"]).items()},
    }
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
