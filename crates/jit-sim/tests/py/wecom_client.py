"""Lists departments and users of the simulated WeCom corp with wechatpy's
unmodified WeCom client.

wechatpy reads every API under ``API_BASE_URL``, which is set to the
simulator. Its ``fetch_access_token`` has ``https://qyapi.weixin.qq.com/cgi-bin/gettoken``
written out in full, so a transport adapter on the client's own requests
session sends that one host to the simulator as well; the library's code is
not changed. Reads JSON ``{api_base_url, corp_id, secret}`` from stdin and
prints ``{departments: [...], users: {userid: [dept ids]}}``.
"""
import json
import sys

import requests

try:  # wechatpy 2.x
    from wechatpy.work import WeChatClient
except ImportError:  # wechatpy 1.8
    from wechatpy.enterprise import WeChatClient

REAL = "https://qyapi.weixin.qq.com/cgi-bin/"


class ToSimulator(requests.adapters.HTTPAdapter):
    def __init__(self, base):
        super().__init__()
        self.base = base

    def send(self, request, **kwargs):
        request.url = self.base + request.url[len(REAL):]
        return super().send(request, **kwargs)


def main():
    inp = json.load(sys.stdin)
    client = WeChatClient(inp["corp_id"], inp["secret"])
    client.API_BASE_URL = inp["api_base_url"]
    client._http.mount(REAL, ToSimulator(inp["api_base_url"]))
    depts = client.department.get()
    users = {}
    for d in depts:
        for u in client.user.list(d["id"]):
            users[u["userid"]] = u["department"]
    json.dump({"departments": [d["id"] for d in depts], "users": users}, sys.stdout)


if __name__ == "__main__":
    main()
