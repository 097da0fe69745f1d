"""Registers Levity's ``levity-tls:`` endpoint strings with Twisted (see levity_site.tls).

Twisted finds endpoint parsers as plugins in every ``twisted/plugins`` directory on
``sys.path`` (this one: the project's root), as daphne registers its ``fd:``.
"""

from twisted.internet.interfaces import IStreamServerEndpointStringParser
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IPlugin, IStreamServerEndpointStringParser)
class LevityTLSParser:
    prefix = "levity-tls"

    def parseStreamServer(self, reactor, *args, **kwargs):
        from levity_site.tls import server_endpoint

        return server_endpoint(reactor, *args, **kwargs)


parser = LevityTLSParser()
