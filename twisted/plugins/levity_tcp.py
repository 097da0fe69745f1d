"""Registers Levity's ``levity-tcp:`` endpoint strings with Twisted (see levity_site.tcp)."""

from twisted.internet.interfaces import IStreamServerEndpointStringParser
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IPlugin, IStreamServerEndpointStringParser)
class LevityTCPParser:
    prefix = "levity-tcp"

    def parseStreamServer(self, reactor, *args, **kwargs):
        from levity_site.tcp import server_endpoint

        return server_endpoint(reactor, *args, **kwargs)


parser = LevityTCPParser()
