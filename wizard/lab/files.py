"""The files of a lab node's install folder, as a Confluence 8 installer leaves them.

The lab's nodes are simulated, but the wizard reads and edits their files exactly
as it does on a real node, so these are the stock files (server.xml of Confluence
8.x with its commented-out alternative Connectors, a setenv.sh with the usual
CATALINA_OPTS lines) with only the ports changed to the node's free ones.
"""

from __future__ import annotations

#: Confluence 8's stock conf/server.xml; ``{port}`` is the node's Confluence port.
SERVER_XML = """\
<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
    <Service name="Tomcat-Standalone">
        <!--
        ==============================================================================================================
        DEFAULT - Direct connector with no proxy, for unproxied HTTP access to Confluence.

        If using a http/https proxy, comment out this connector.
        ==============================================================================================================
        -->
        <Connector port="{port}" connectionTimeout="20000" redirectPort="8443"
                   maxThreads="100" minSpareThreads="10"
                   enableLookups="false" acceptCount="100" URIEncoding="UTF-8"
                   maxPostSize="16777216" maxHttpHeaderSize="16384"
                   relaxedPathChars="[]|" relaxedQueryChars="[]|{{}}^&#x5c;&#x60;&quot;&lt;&gt;"
                   protocol="org.apache.coyote.http11.Http11NioProtocol"/>

        <!--
        ==============================================================================================================
        HTTP - Proxying Confluence via Apache or Nginx over HTTP

        If you're proxying traffic to Confluence over HTTP, uncomment the connector below and comment out the others.
        Make sure you provide the right information for proxyName and proxyPort.

        For more information on configuring your proxy, see https://confluence.atlassian.com/x/4xQLM
        ==============================================================================================================
        -->

        <!--
        <Connector port="8090" connectionTimeout="20000" redirectPort="8443"
                   maxThreads="100" minSpareThreads="10"
                   enableLookups="false" acceptCount="100" URIEncoding="UTF-8"
                   protocol="org.apache.coyote.http11.Http11NioProtocol"
                   scheme="http" proxyName="<subdomain>.<domain>.com" proxyPort="80"/>
        -->

        <!--
        ==============================================================================================================
        HTTPS - Direct connector with no proxy, for unproxied HTTPS access to Confluence.

        For more info see https://confluence.atlassian.com/x/s3UC
        ==============================================================================================================
        -->

        <!--
        <Connector port="8443" maxHttpHeaderSize="8192"
                   maxThreads="100" minSpareThreads="10"
                   enableLookups="false" disableUploadTimeout="true"
                   acceptCount="100" scheme="https" secure="true" SSLEnabled="true"
                   URIEncoding="UTF-8" keystorePass="<MY_CERTIFICATE_PASSWORD>"
                   protocol="org.apache.coyote.http11.Http11Nio2Protocol"
                   sslEnabledProtocols="TLSv1.2,TLSv1.3"/>
        -->

        <!--
        ==============================================================================================================
        HTTPS - Proxying Confluence via Apache or Nginx over HTTPS

        If you're proxying traffic to Confluence over HTTPS, uncomment the connector below and comment out the others.
        Make sure you provide the right information for proxyName and proxyPort.

        For more information on configuring your proxy, see https://confluence.atlassian.com/x/PxAyLg
        ==============================================================================================================
        -->

        <!--
        <Connector port="8090" connectionTimeout="20000" redirectPort="8443"
                   maxThreads="100" minSpareThreads="10"
                   enableLookups="false" acceptCount="100" URIEncoding="UTF-8"
                   protocol="org.apache.coyote.http11.Http11NioProtocol"
                   scheme="https" secure="true" proxyName="<subdomain>.<domain>.com" proxyPort="443"/>
        -->

        <Engine name="Standalone" defaultHost="localhost">
            <Host name="localhost" appBase="webapps" unpackWARs="true" autoDeploy="false" startStopThreads="4">
                <Context path="{context_path}" docBase="../confluence" reloadable="false" useHttpOnly="true">
                    <!-- Logging configuration for Confluence is specified in confluence/WEB-INF/classes/log4j.properties -->
                    <Manager pathname=""/>
                    <Valve className="org.apache.catalina.valves.StuckThreadDetectionValve" threshold="60"/>

                    <!-- http://tomcat.apache.org/tomcat-9.0-doc/config/valve.html#Error_Report_Valve -->
                    <Valve className="org.apache.catalina.valves.ErrorReportValve" showReport="false" showServerInfo="false"/>
                </Context>

                <Context path="${{confluence.context.path}}/synchrony-proxy" docBase="../synchrony-proxy" reloadable="false"
                         useHttpOnly="true">
                    <Valve className="org.apache.catalina.valves.StuckThreadDetectionValve" threshold="60"/>
                </Context>
            </Host>
        </Engine>
    </Service>
</Server>
"""

#: A Confluence 8 bin/setenv.sh; ``{synchrony_port}`` is the node's Synchrony port.
SETENV_SH = """\
#!/bin/sh
# -----------------------------------------------------------------------------------
# Note: If running Confluence as a Windows service, use setenv.bat instead.
#
# One way to set the JVM's options: CATALINA_OPTS, read by catalina.sh at start-up.
# -----------------------------------------------------------------------------------

CATALINA_OPTS="-XX:+IgnoreUnrecognizedVMOptions ${{CATALINA_OPTS}}"
CATALINA_OPTS="-Xlog:gc*:file=$LOGBASEABS/logs/gc-%t.log:tags,time,uptime,level:filecount=5,filesize=2M ${{CATALINA_OPTS}}"
CATALINA_OPTS="-XX:ReservedCodeCacheSize=256m -XX:+UseCodeCacheFlushing ${{CATALINA_OPTS}}"
CATALINA_OPTS="-Djava.locale.providers=JRE,SPI,CLDR ${{CATALINA_OPTS}}"
CATALINA_OPTS="-Dsynchrony.enable.xhr.fallback=true ${{CATALINA_OPTS}}"
CATALINA_OPTS="-Dsynchrony.port={synchrony_port} ${{CATALINA_OPTS}}"
CATALINA_OPTS="-Dconfluence.context.path=${{CONFLUENCE_CONTEXT_PATH}} ${{CATALINA_OPTS}}"
CATALINA_OPTS="-Datlassian.plugins.startup.options=${{START_CONFLUENCE_JAVA_OPTS}} ${{CATALINA_OPTS}}"
CATALINA_OPTS="-Xms1024m -Xmx1024m -XX:+UseG1GC ${{CATALINA_OPTS}}"

export CATALINA_OPTS
"""


def server_xml(port: int, context_path: str = "") -> str:
    """The stock server.xml with its active Connector on ``port``."""
    return SERVER_XML.format(port=port, context_path=context_path)


def setenv_sh(synchrony_port: int) -> str:
    """The stock setenv.sh with ``-Dsynchrony.port`` set to ``synchrony_port``."""
    return SETENV_SH.format(synchrony_port=synchrony_port)
