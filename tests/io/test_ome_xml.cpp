// The one OME-XML reader (io/ome_xml.h): what it reads, and hostile descriptions that
// crashed the std::regex matching it replaces (20-60 KB attributes, channel names,
// unclosed tags), deep nesting, DTD entities, and the size bound.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "nephroseg/core/error.h"
#include "nephroseg/io/ome_xml.h"
#include "support/golden.h"

using namespace nephroseg;

namespace {

std::string error_text(const std::string& xml) {
  try {
    io::read_ome_pixels(xml, "slide 'x.ome.tif'");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(OmeXml, ReadsTheFirstImagesPixelsWithOrWithoutPrefix) {
  const std::string plain =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?><OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\">"
      "<Image ID=\"Image:0\"><Pixels SizeC=\"3\" PhysicalSizeX=\"0.25\" PhysicalSizeXUnit=\"&#181;m\" "
      "PhysicalSizeY=\"0.5\"><Channel Name=\"DAPI\"/><Channel Name=\"FITC &amp; co\"/><Channel/></Pixels></Image>"
      "<Image ID=\"Image:1\"><Pixels SizeC=\"9\" PhysicalSizeX=\"7\"><Channel Name=\"other\"/></Pixels></Image></OME>";
  const auto p = io::read_ome_pixels(plain, "a");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->size_c, "3");
  EXPECT_EQ(p->physical_size_x, "0.25");
  EXPECT_EQ(p->unit_x, "\xC2\xB5m");  // &#181; decoded to UTF-8
  EXPECT_EQ(p->physical_size_y, "0.5");
  EXPECT_EQ(p->unit_y, "");
  EXPECT_EQ(p->channel_names, (std::vector<std::string>{"DAPI", "FITC & co", ""}));

  const std::string prefixed =
      "<ome:OME xmlns:ome=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\"><ome:Image><ome:Pixels "
      "PhysicalSizeX=\"2\" PhysicalSizeXUnit=\"nm\"><ome:Channel Name=\"c0\"/></ome:Pixels></ome:Image></ome:OME>";
  const auto q = io::read_ome_pixels(prefixed, "b");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->physical_size_x, "2");
  EXPECT_EQ(q->unit_x, "nm");
  EXPECT_EQ(q->channel_names, std::vector<std::string>{"c0"});

  EXPECT_FALSE(io::read_ome_pixels("<OME><Image/></OME>", "c"));
}

TEST(OmeXml, HugeAttributesAndNamesReadWithoutRecursion) {
  const std::string big(60000, 'a');
  const std::string xml = "<OME><Image><Pixels PhysicalSizeX=\"1\" Note=\"" + big + "\"><Channel Name=\"" + big +
                          "\"/></Pixels></Image></OME>";
  const auto p = io::read_ome_pixels(xml, "a");
  ASSERT_TRUE(p);
  ASSERT_EQ(p->channel_names.size(), 1u);
  EXPECT_EQ(p->channel_names[0].size(), big.size());
  // 200,000 nested elements before the Pixels: no stack is spent per level.
  std::string deep;
  for (int i = 0; i < 200000; ++i) deep += "<d>";
  deep += "<Pixels PhysicalSizeX=\"3\"/>";
  for (int i = 0; i < 200000; ++i) deep += "</d>";
  const auto d = io::read_ome_pixels("<OME>" + deep + "</OME>", "deep");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->physical_size_x, "3");
}

TEST(OmeXml, MalformedOrOversizedDescriptionsAreOurErrors) {
  const std::string unclosed = "<OME><Image><Pixels PhysicalSizeX=\"1\" Name=\"" + std::string(40000, 'x');
  std::string e = error_text(unclosed);
  EXPECT_NE(e.find("slide 'x.ome.tif': its OME-XML description is not well-formed XML"), std::string::npos) << e;
  e = error_text("<OME><Pixels></OME>");
  EXPECT_NE(e.find("not well-formed XML (an element is not closed where it should be at byte"), std::string::npos) << e;
  e = error_text(std::string(io::kMaxOmeXmlBytes + 1, ' '));
  EXPECT_NE(e.find("over the limit of"), std::string::npos) << e;
}

// A DTD's entities are never expanded (the "billion laughs" document stays small).
TEST(OmeXml, DtdEntitiesAreNotExpanded) {
  std::string dtd = "<!DOCTYPE OME [<!ENTITY a \"aaaaaaaaaa\">";
  for (int i = 1; i < 10; ++i) {
    const std::string prev = std::string(1, static_cast<char>('a' + i - 1));
    dtd += "<!ENTITY " + std::string(1, static_cast<char>('a' + i)) + " \"";
    for (int k = 0; k < 10; ++k) dtd += "&" + prev + ";";
    dtd += "\">";
  }
  dtd += "]>";
  const std::string xml = dtd + "<OME><Image><Pixels PhysicalSizeX=\"1\"><Channel Name=\"&j;\"/></Pixels></Image></OME>";
  const auto p = io::read_ome_pixels(xml, "laughs");
  ASSERT_TRUE(p);
  ASSERT_EQ(p->channel_names.size(), 1u);
  EXPECT_LT(p->channel_names[0].size(), 16u) << "an entity was expanded";
}

// std::regex recursed per character on file and request content (a stack overflow on
// 20-60 KB of text). It stays out of every source file of the library and the CLI.
TEST(NoRegex, TheLibraryAndTheCliDoNotUseStdRegex) {
  const std::string root = test::source_dir();
  std::ostringstream found;
  for (const std::string dir : {"src", "include", "tools", "python"}) {
    for (const auto& e : std::filesystem::recursive_directory_iterator(root + "/" + dir)) {
      if (!e.is_regular_file()) continue;
      const std::string ext = e.path().extension().string();
      if (ext != ".cpp" && ext != ".h" && ext != ".hpp") continue;
      std::ifstream in(e.path());
      std::string line;
      for (int n = 1; std::getline(in, line); ++n)
        if (line.find("<regex>") != std::string::npos || line.find("std::regex") != std::string::npos)
          found << e.path().string().substr(root.size() + 1) << ":" << n << ": " << line << "\n";
    }
  }
  EXPECT_EQ(found.str(), "") << "use a linear scan or a real parser instead";
}
