"""Checks jit-crypto both ways against independent implementations.

Reads a JSON document from stdin with messages sealed by jit-crypto, opens
them with wechatpy (WeCom WXBizMsgCrypt) and dingtalk-sdk (DingTalk HTTP-push
crypto), then seals messages of its own and prints them as JSON on stdout
for the Rust side to open. Any mismatch raises, so the exit code is non-zero.
"""
import json
import sys

try:  # wechatpy 2.x
    from wechatpy.work.crypto import WeChatCrypto
except ImportError:  # wechatpy 1.8 (current stable release)
    from wechatpy.enterprise.crypto import WeChatCrypto
from dingtalk.crypto import DingTalkCrypto


def main():
    inp = json.load(sys.stdin)
    token, key = inp["token"], inp["key"]
    wecom = WeChatCrypto(token, key, inp["corp_id"])
    ding = DingTalkCrypto(token, key, inp["app_key"])

    ev = inp["wecom_event"]
    plain = wecom.decrypt_message(ev["body"], ev["msg_signature"], ev["timestamp"], ev["nonce"])
    assert plain == ev["plaintext"], (plain, ev["plaintext"])

    echo = inp["wecom_echo"]
    got = wecom.check_signature(echo["msg_signature"], echo["timestamp"], echo["nonce"], echo["echostr"])
    got = got.decode() if isinstance(got, bytes) else got
    assert got == echo["plaintext"], (got, echo["plaintext"])

    d = inp["ding"]
    plain = ding.decrypt_message({"encrypt": d["encrypt"]}, d["msg_signature"], d["timeStamp"], d["nonce"])
    plain = plain.decode() if isinstance(plain, bytes) else plain
    assert plain == d["plaintext"], (plain, d["plaintext"])

    out = {
        "wecom_reply_plaintext": "<xml><Content><![CDATA[来自 wechatpy]]></Content></xml>",
        "ding_success": None,
        "ding_event_plaintext": json.dumps({"EventType": "user_add_org", "UserId": ["u1"]}),
    }
    out["wecom_reply"] = wecom.encrypt_message(out["wecom_reply_plaintext"], "pynonce", "1700000000")
    s = ding.encrypt_message("success", nonce="pynonce", timestamp="1700000000000")
    out["ding_success"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in s.items()}
    e = ding.encrypt_message(out["ding_event_plaintext"], nonce="pynonce2", timestamp="1700000000001")
    out["ding_event"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in e.items()}
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
